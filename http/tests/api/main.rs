//! The integration suite: one test binary, every test against the real services (Postgres,
//! Redis, RabbitMQ) with its own databases. See `helpers` for the harness.

mod actors;
mod audit;
mod billing;
mod browser;
mod cache;
mod cli;
mod console;
mod console_browser;
mod counters;
mod events;
mod helpers;
mod inventory;
mod isolation;
mod live;
mod locations;
mod logs;
mod malformed;
mod meta;
mod moves;
mod moves_live;
mod notifications;
mod orders;
mod patients;
mod payers;
mod prescribers;
mod price_lists;
mod ratelimit;
mod reference;
mod reports;
mod security;
mod shard_failure;
mod shards;
mod tenants;
mod webhooks;
