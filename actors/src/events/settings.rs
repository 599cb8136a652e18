//! `[events]`: how the relay and the consumers run.

use super::consumer::ConsumerConfig;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Run the relay and the consumers in this process (off for a process that only serves
    /// the CLI, or for an instance deliberately kept out of event handling).
    pub enabled: bool,
    /// Longest pause of the relay between drains without a commit notification; also how often a
    /// standby instance retries the relay's leadership (ms).
    pub relay_poll_ms: u64,
    /// Events per tenant transaction of the relay.
    pub relay_batch: i64,
    /// Tenants the relay publishes at once (each tenant's events stay in order: one tenant is
    /// never published by two tasks). Each in flight holds a shard connection and waits for the
    /// broker's confirms and its own commit, so one at a time caps a shard at a few hundred
    /// tenant-batches per second; several let the broker's and Postgres's flushes serve many.
    pub relay_tenants_in_flight: usize,
    /// Attempts of a consumer before a message is dead-lettered.
    pub max_attempts: u32,
    /// Backoff before the first retry (ms); doubles with each attempt.
    pub retry_base_ms: u64,
    /// Longest backoff (ms).
    pub retry_max_ms: u64,
    /// Deliveries each consumer handles at once on each instance.
    pub prefetch: u16,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            relay_poll_ms: 1000,
            relay_batch: 500,
            relay_tenants_in_flight: 8,
            max_attempts: 8,
            retry_base_ms: 2000,
            retry_max_ms: 10 * 60 * 1000,
            prefetch: 16,
        }
    }
}

impl EventSettings {
    pub fn consumer(&self) -> ConsumerConfig {
        ConsumerConfig {
            max_attempts: self.max_attempts.max(1),
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max: Duration::from_millis(self.retry_max_ms),
            prefetch: self.prefetch.max(1),
        }
    }
}
