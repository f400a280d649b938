//! Helpers shared by the ordering tests.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRng, TestRunner};

/// Runs `property` over 256 seeds (deterministically) and returns the seed proptest finds that
/// breaks it, if any: the weak-ordering model's counterexample, or `None` if it found none.
pub fn find_counterexample(property: impl Fn(u64) -> bool) -> Option<u64> {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config.clone(),
        TestRng::deterministic_rng(config.rng_algorithm),
    );
    match runner.run(&any::<u64>(), |seed| {
        if property(seed) {
            Ok(())
        } else {
            Err(TestCaseError::fail(
                "the model found an ordering that breaks it",
            ))
        }
    }) {
        Ok(()) => None,
        Err(TestError::Fail(_, seed)) => Some(seed),
        Err(e) => panic!("proptest aborted: {e}"),
    }
}
