//! `weir users create|list|delete|reset-password`, with Airflow's flags, on the database directly
//! (no server needed, as for every other command).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{self, OutputFormat};
use super::{App, CliError, CliResult};
use crate::domain::auth::Role;
use crate::runtime::operations::OperationError;
use crate::runtime::users::{self, NewUser};
use crate::storage::users as user_rows;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Creates a user: `weir users create --username ana --role Op --password ...`.
    Create {
        /// The name they sign in with.
        #[arg(long)]
        username: String,
        /// Viewer, User, Op or Admin.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Their email address (shown, never used to send mail).
        #[arg(long)]
        email: Option<String>,
        /// Their first name.
        #[arg(long)]
        firstname: Option<String>,
        /// Their last name.
        #[arg(long)]
        lastname: Option<String>,
    },
    /// Every user with their role (never a password).
    List {
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Removes a user; their tokens and sessions stop working at once.
    Delete {
        /// The name they sign in with.
        #[arg(long)]
        username: String,
    },
    /// Sets a new password; tokens and sessions issued before stop working.
    ResetPassword {
        /// The name they sign in with.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PasswordArgs {
    /// The password (at least 8 characters). It shows in the shell history and the process
    /// list: `--use-random-password` avoids both.
    #[arg(long)]
    password: Option<String>,
    /// Generates a password and prints it once.
    #[arg(long)]
    use_random_password: bool,
}

impl PasswordArgs {
    /// The password to set, and whether it was generated (then it is printed).
    fn resolve(self) -> Result<(String, bool), OperationError> {
        match self.password {
            Some(password) => Ok((password, false)),
            None => Ok((users::random_password()?, true)),
        }
    }
}

pub async fn run(app: &App, command: UsersCommand) -> CliResult {
    match command {
        UsersCommand::Create {
            username,
            role,
            password,
            email,
            firstname,
            lastname,
        } => {
            let role: Role = role
                .parse()
                .map_err(|error: crate::domain::auth::UnknownRole| CliError::Usage(error.to_string()))?;
            let (password, generated) = password.resolve().map_err(failed)?;
            let db = app.db(false).await?;
            let new_user = NewUser {
                username,
                password: password.clone(),
                role,
                email,
                first_name: firstname,
                last_name: lastname,
            };
            let user = users::create_user(&db, new_user).await.map_err(failed)?;
            println!("created user `{}` with role {}", user.username, user.role);
            if generated {
                println!("password: {password}");
            }
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::List { output } => {
            let db = app.db(false).await?;
            let mut connection = db.acquire().await?;
            let rows: Vec<serde_json::Value> = user_rows::list(&mut connection)
                .await?
                .iter()
                .map(|user| {
                    json!({
                        "username": user.username,
                        "role": user.role.as_str(),
                        "email": user.email,
                        "first_name": user.first_name,
                        "last_name": user.last_name,
                        "created_at": output::time(user.created_at),
                    })
                })
                .collect();
            output::print_rows(
                output,
                &rows,
                &["username", "role", "email", "first_name", "last_name", "created_at"],
            );
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Delete { username } => {
            let db = app.db(false).await?;
            users::delete_user(&db, &username).await.map_err(failed)?;
            println!("deleted user `{username}`");
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::ResetPassword { username, password } => {
            let (password, generated) = password.resolve().map_err(failed)?;
            let db = app.db(false).await?;
            users::reset_password(&db, &username, password.clone())
                .await
                .map_err(failed)?;
            println!("reset the password of `{username}`; their earlier tokens and sessions no longer work");
            if generated {
                println!("password: {password}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Bad input is a usage error (exit 2); a missing or taken user is a failure (exit 1).
fn failed(error: OperationError) -> anyhow::Error {
    match error {
        OperationError::Invalid(message) => CliError::Usage(message).into(),
        OperationError::NotFound(message) | OperationError::Conflict(message) => CliError::Failed(message).into(),
        OperationError::Storage(error) => error.into(),
    }
}
