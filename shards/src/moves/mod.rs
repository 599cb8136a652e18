//! # Online tenant moves
//!
//! Moving a tenant from one shard (Postgres server) to another while it keeps serving:
//!
//! 1. **Capture** ([`capture::install`]): the tenant is listed in the source's
//!    `aries_move_capture` and a row trigger on every tenant table logs the primary key of each
//!    row of the tenant that changes (`aries_move_change`).
//! 2. **Bulk copy** ([`copy::copy_tenant`]): one `REPEATABLE READ` snapshot of the tenant's rows on
//!    the source streamed with `COPY` into the target, parents before children.
//! 3. **Catch-up** ([`capture::catch_up_round`]): the logged keys are re-read on the source and
//!    their current state (or absence) applied to the target, in rounds, until a round is small.
//! 4. **Freeze** ([`freeze`]): the tenant's move-fence advisory lock is taken exclusive — every
//!    writer holds it shared (the fence in `aries_enter`), so this waits for writes in
//!    flight and holds new ones — and marked `serving = false`. From then on every instance's
//!    requests for the tenant wait in its actor.
//! 5. **Final delta** and **verification** ([`verify`]): the last changes, then per-table row
//!    counts and checksums on both sides.
//! 6. **Flip**: the target's anchor row serves under epoch + 1 and the catalog's placement moves to
//!    the target with epoch + 1 (one compare-and-set). Waiting requests re-read the placement and
//!    run on the target; an instance that did not run the move learns it from the source's fence
//!    on its next request.
//! 7. **Clean-up** ([`purge`]): capture removed, the source's rows deleted once transactions
//!    that began before the freeze have ended; the anchor row stays as a tombstone.
//!
//! A move that fails or is cancelled before the flip is rolled back: the source serves again and
//! the target's copy is deleted. [`engine`] runs these steps as a state machine recorded in the
//! catalog ([`record`]), so a rerun after a crash resumes from the recorded state.

pub mod capture;
pub mod copy;
pub mod engine;
pub mod purge;
pub mod record;
pub mod schema;
pub mod verify;

pub use engine::{MoveContext, MoveTuning, freeze};
pub use record::{MoveRecord, MoveState};

/// Why a move step failed.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The shards' schemas cannot be moved between (differ, or break a rule a move relies on).
    #[error("schema: {0}")]
    Schema(String),
    /// The verification found the copy different from the source; nothing was flipped.
    #[error("verification failed: {0}")]
    VerificationFailed(String),
    /// Another runner took the move over (its fencing token is higher): stop, touching nothing.
    #[error("the move was taken over by another runner")]
    Fenced,
    /// The catalog no longer places the tenant where the move started (moved by someone else).
    #[error("the tenant's placement changed under the move")]
    PlacementChanged,
    /// The freeze could not take the tenant's row lock in time (a long transaction holds it).
    #[error("could not freeze the tenant's writes: {0}")]
    FreezeTimeout(String),
    /// The runner stopped on purpose at a step (a test of crash recovery).
    #[error("the runner stopped after {0} (fault injection)")]
    Injected(&'static str),
    /// The runner's lease ran out or Redis stopped answering: stop, a rerun resumes.
    #[error("the runner lost its lease")]
    LeaseLost,
    #[error("catalog: {0}")]
    Catalog(#[from] crate::CatalogError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}
