//! How far long training work has got, reported without knowing who shows it: the CLI draws
//! progress bars from it; tests and other callers pass [`Silent`].

/// A sink for progress reports. Work runs in stages ("features", "training (epochs)"), each
/// a known number of steps.
pub trait Progress {
    /// A stage of `total` steps begins.
    fn begin(&self, stage: &str, total: u64);
    /// One step of the current stage is done; `note` says how it went (an epoch's scores).
    fn step(&self, note: Option<String>);
    /// The current stage is over.
    fn end(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: u64) {}
    fn step(&self, _: Option<String>) {}
    fn end(&self) {}
}
