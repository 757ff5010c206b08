//! Connections and variables in the metadata database: passwords are stored only as ciphertext,
//! legacy plain-text ones still read and get encrypted, a wrong key is named as such, and the
//! resolver puts env over config over the database.

use std::collections::BTreeMap;

use sqlx::Row;
use weir::domain::connection::Connection;
use weir::runtime::connections::{ConnectionSource, Connections, load_variables};
use weir::secrets::SecretsKey;
use weir::storage::StorageError;
use weir::storage::connections::{self, PasswordChange};
use weir::storage::variables::{self, Variable};

use crate::support::{TestDb, databases};

const PASSWORD: &str = "s3cr3t-pw-storage-7f3a";

fn warehouse() -> Connection {
    Connection::from_url(
        "warehouse",
        &format!("postgres://loader:{PASSWORD}@db.internal:5432/dw?sslmode=require"),
    )
    .unwrap()
}

/// The password column exactly as stored.
async fn raw_password(db: &weir::storage::Db, conn_id: &str) -> Option<String> {
    let mut connection = db.acquire().await.unwrap();
    sqlx::query("SELECT password FROM connection WHERE conn_id = $1")
        .bind(conn_id)
        .fetch_one(&mut *connection)
        .await
        .unwrap()
        .try_get("password")
        .unwrap()
}

#[tokio::test]
async fn the_password_column_holds_only_ciphertext_and_reads_back_decrypted() {
    let key = SecretsKey::from_passphrase("storage test key");
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.unwrap();
        connections::insert(&mut connection, &warehouse(), &key).await.unwrap();
        connection.commit().await.unwrap();
        let mut connection = db.begin().await.unwrap();
        let raw = raw_password(db, "warehouse").await.unwrap();
        assert!(raw.starts_with("enc:v1:"), "{label}: {raw}");
        assert!(!raw.contains(PASSWORD), "{label}: the plain password is in the column");

        let read = connections::get_with_password(&mut connection, "warehouse", &key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, warehouse(), "{label}: every field round-trips");
        let shown = connections::get(&mut connection, "warehouse").await.unwrap().unwrap();
        assert!(shown.has_password && shown.connection.password.is_none(), "{label}");

        // A new password is encrypted too; Keep keeps it; Clear removes it.
        let mut changed = warehouse();
        changed.port = Some(6432);
        let new_password = PasswordChange::Set("n3w-s3cr3t".to_string());
        connections::update(&mut connection, &changed, &new_password, &key)
            .await
            .unwrap();
        connection.commit().await.unwrap();
        let mut connection = db.begin().await.unwrap();
        let raw = raw_password(db, "warehouse").await.unwrap();
        assert!(
            raw.starts_with("enc:v1:") && !raw.contains("n3w-s3cr3t"),
            "{label}: {raw}"
        );
        connections::update(&mut connection, &changed, &PasswordChange::Keep, &key)
            .await
            .unwrap();
        let password = connections::password(&mut connection, "warehouse", &key).await.unwrap();
        assert_eq!(password.as_deref(), Some("n3w-s3cr3t"), "{label}");
        connections::update(&mut connection, &changed, &PasswordChange::Clear, &key)
            .await
            .unwrap();
        connection.commit().await.unwrap();
        assert_eq!(raw_password(db, "warehouse").await, None, "{label}");
    }
}

#[tokio::test]
async fn a_legacy_plain_password_still_reads_and_is_encrypted_in_place() {
    let key = SecretsKey::from_passphrase("storage test key");
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.acquire().await.unwrap();
        sqlx::query("INSERT INTO connection (conn_id, conn_type, host, password) VALUES ('old', 'postgres', 'h', $1)")
            .bind(PASSWORD)
            .execute(&mut *connection)
            .await
            .unwrap();
        assert!(
            connections::has_plain_passwords(&mut connection).await.unwrap(),
            "{label}"
        );
        let password = connections::password(&mut connection, "old", &key).await.unwrap();
        assert_eq!(
            password.as_deref(),
            Some(PASSWORD),
            "{label}: legacy plain text reads as it is"
        );

        let encrypted = connections::encrypt_plain_passwords(&mut connection, &key)
            .await
            .unwrap();
        assert_eq!(encrypted, 1, "{label}");
        let raw = raw_password(db, "old").await.unwrap();
        assert!(raw.starts_with("enc:v1:") && !raw.contains(PASSWORD), "{label}: {raw}");
        let password = connections::password(&mut connection, "old", &key).await.unwrap();
        assert_eq!(password.as_deref(), Some(PASSWORD), "{label}");
        assert!(
            !connections::has_plain_passwords(&mut connection).await.unwrap(),
            "{label}"
        );
        assert_eq!(
            connections::encrypt_plain_passwords(&mut connection, &key)
                .await
                .unwrap(),
            0,
            "{label}: running it again changes nothing"
        );
    }
}

#[tokio::test]
async fn a_password_stored_with_another_key_is_reported_as_such_and_spoils_only_its_connection() {
    let stored_with = SecretsKey::from_passphrase("the old key");
    let other = SecretsKey::from_passphrase("a new key");
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.unwrap();
        connections::insert(&mut connection, &warehouse(), &stored_with)
            .await
            .unwrap();
        let api = Connection::from_url("api", "https://api.example.com").unwrap();
        connections::insert(&mut connection, &api, &other).await.unwrap();

        let error = connections::password(&mut connection, "warehouse", &other)
            .await
            .unwrap_err();
        assert!(matches!(error, StorageError::Undecryptable(_)), "{label}: {error:?}");
        assert_eq!(
            error.to_string(),
            "connection `warehouse`'s password was encrypted with a different secrets key: set [secrets] key (or WEIR__SECRETS__KEY) to the key used when it was stored, or set the password again",
            "{label}"
        );

        let resolved = Connections::load(
            &mut connection,
            &config_without_connections(),
            Vec::<(String, String)>::new(),
            &other,
        )
        .await
        .unwrap();
        assert!(
            resolved.get("api").is_some(),
            "{label}: the other connection still works"
        );
        let error = resolved.require("warehouse").unwrap_err().to_string();
        assert!(
            error.contains("was encrypted with a different secrets key"),
            "{label}: {error}"
        );
    }
}

fn config_without_connections() -> weir::config::Config {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("config.toml");
    weir::config::Config::load(&path, false, Vec::<(String, String)>::new()).unwrap()
}

#[tokio::test]
async fn env_wins_over_config_which_wins_over_the_database() {
    let key = SecretsKey::from_passphrase("storage test key");
    let folder = tempfile::tempdir().unwrap();
    let config_path = folder.path().join("config.toml");
    std::fs::write(
        &config_path,
        "[connections.warehouse]\nurl = \"postgres://cfg:cfg-pw@cfg-host/dw\"\n\n[connections.api]\nurl = \"https://cfg-api\"\npassword = \"cfg-api-pw\"\n",
    )
    .unwrap();
    let config = weir::config::Config::load(&config_path, true, Vec::<(String, String)>::new()).unwrap();
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.unwrap();
        for url in [
            ("warehouse", "postgres://db:db-pw@db-host/dw"),
            ("api", "https://db-api"),
            ("local", "sqlite://data/local.db"),
        ] {
            let stored = Connection::from_url(url.0, url.1).unwrap();
            connections::insert(&mut connection, &stored, &key).await.unwrap();
        }
        let environment = vec![(
            "WEIR_CONN_WAREHOUSE".to_string(),
            "postgres://env:env-pw@env-host:5433/dw".to_string(),
        )];
        let resolved = Connections::load(&mut connection, &config, environment, &key)
            .await
            .unwrap();
        let expected = [
            ("warehouse", ConnectionSource::Env, "env-host"),
            ("api", ConnectionSource::Config, "cfg-api"),
            ("local", ConnectionSource::Database, "data/local.db"),
        ];
        for (name, source, host) in expected {
            assert_eq!(resolved.source(name), Some(source), "{label}: {name}");
            assert_eq!(
                resolved.require(name).unwrap().host.as_deref(),
                Some(host),
                "{label}: {name}"
            );
        }
        assert_eq!(resolved.get("api").unwrap().password.as_deref(), Some("cfg-api-pw"));
        assert_eq!(
            resolved.url("local").unwrap(),
            format!("sqlite://{}", config.folder.join("data/local.db").display()),
            "{label}: SQLite paths resolve against the config folder"
        );
        let mut passwords = resolved.passwords();
        passwords.sort();
        assert_eq!(passwords, ["cfg-api-pw", "cfg-pw", "db-pw", "env-pw"], "{label}");
        let context = resolved.template_context();
        assert_eq!(context["warehouse"]["port"], 5433, "{label}");
        assert!(!context.to_string().contains("-pw"), "{label}: {context}");
    }
}

#[tokio::test]
async fn templates_see_database_variables_overlaid_by_env() {
    let key = SecretsKey::from_passphrase("weir-tests");
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.unwrap();
        for (name, value) in [("region", "kr"), ("work_dir", "/db/dir")] {
            let variable = Variable {
                key: name.to_string(),
                value: value.to_string(),
                description: None,
            };
            variables::set(&mut connection, &variable, &key).await.unwrap();
        }
        // `set` replaces the value and keeps a description it is not given.
        let described = Variable {
            key: "region".to_string(),
            value: "us".to_string(),
            description: Some("the market".to_string()),
        };
        variables::set(&mut connection, &described, &key).await.unwrap();
        let again = Variable {
            description: None,
            ..described.clone()
        };
        variables::set(&mut connection, &again, &key).await.unwrap();
        let stored = variables::get(&mut connection, "region", &key).await.unwrap().unwrap();
        assert_eq!(stored, described, "{label}");

        let environment = vec![("WEIR_VAR_WORK_DIR".to_string(), "/env/dir".to_string())];
        let variables = load_variables(&mut connection, environment, &key).await.unwrap();
        assert_eq!(
            variables,
            BTreeMap::from([
                ("region".to_string(), "us".to_string()),
                ("work_dir".to_string(), "/env/dir".to_string()),
            ]),
            "{label}"
        );
    }
}
