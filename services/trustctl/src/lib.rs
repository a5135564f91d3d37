//! `trustctl`, the operator's command line for the Children's Trust Platform, as a library: the command
//! line ([`cli`]) and its commands ([`commands`]), the client of indicator-ingest with its bearer token
//! ([`auth`]), the catalogue, staff directory and routing files, and the partner submission files ([`records`]) with
//! the function that submits one ([`submit::submit`]), which the end-to-end tests call directly, and the
//! text of the status board and series ([`render`]).

pub mod auth;
pub mod catalogue_file;
pub mod cli;
pub mod commands;
pub mod directory_file;
pub mod period;
pub mod records;
pub mod render;
pub mod routing_file;
pub mod submit;
