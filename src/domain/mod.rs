//! The DAG model and every decision about it: validation, schedules, states, trigger rules and
//! the planner. No IO, no clock (`now` is a parameter), no SQL.

pub mod alerts;
pub mod attempt_end;
pub mod audit;
pub mod auth;
pub mod backfill;
pub mod connection;
pub mod dag;
pub mod datasets;
pub mod dates;
pub mod duration;
pub mod ids;
pub mod liveness;
pub mod params;
pub mod percent;
pub mod planner;
pub mod schedule;
pub mod secret;
pub mod spec;
pub mod state;
pub mod suggest;
pub mod template;
pub mod trigger_rule;
pub mod ui_paths;
pub mod validate;
