//! The browser's kernel self-test run natively on this machine's adapter (lavapipe where
//! there is no GPU): every check passes, every family is checked, and the comparison
//! itself can fail.

use rezero::{Gpu, GpuOptions};
use rezero_web::selftest::{self, Tol, compare};

/// Whether `CI` is set to something other than empty, `0` or `false`: then a missing
/// adapter fails the test instead of skipping it.
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

#[test]
fn every_kernel_family_matches_its_reference() {
    let gpu = match pollster::block_on(Gpu::new(&GpuOptions::default())) {
        Ok(gpu) => gpu,
        Err(e) if ci() => panic!("CI is set, and the self-test needs an adapter: {e}"),
        Err(e) => {
            eprintln!("SKIPPED selftest: no adapter ({e}) (with CI=true this fails)");
            return;
        }
    };
    let start = std::time::Instant::now();
    let checks = pollster::block_on(selftest::run_all(&gpu, |_| {}));
    let seconds = start.elapsed().as_secs_f64();
    let failures: Vec<_> = checks.iter().filter(|c| c.failure.is_some()).collect();
    for check in &failures {
        eprintln!(
            "FAILED {} / {}: {}",
            check.family,
            check.case,
            check.failure.as_deref().unwrap_or_default()
        );
    }
    eprintln!(
        "selftest on {}: {} checks in {seconds:.2} s",
        gpu.info().name,
        checks.len()
    );
    let mut slowest: Vec<_> = checks.iter().collect();
    slowest.sort_by(|a, b| b.millis.total_cmp(&a.millis));
    for check in slowest.iter().take(5) {
        eprintln!(
            "  slow: {:.0} ms {} / {}",
            check.millis, check.family, check.case
        );
    }
    for family in families(&checks) {
        let of = checks.iter().filter(|c| c.family == family);
        let (count, millis) = of.fold((0, 0.0), |(n, t), c| (n + 1, t + c.millis));
        eprintln!("  {family}: {count} checks, {millis:.0} ms");
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed",
        failures.len(),
        checks.len()
    );
    for family in selftest::FAMILIES {
        assert!(
            checks.iter().any(|c| c.family == family),
            "no check of the {family} family ran"
        );
    }
}

/// The families of `checks`, in the order they first ran.
fn families(checks: &[selftest::Check]) -> Vec<&'static str> {
    let mut seen = Vec::new();
    for check in checks {
        if !seen.contains(&check.family) {
            seen.push(check.family);
        }
    }
    seen
}

#[test]
fn the_comparison_names_the_first_failing_index() {
    let want = [1.0f32, 2.0, 3.0, 4.0];
    assert_eq!(compare("x", &want, &want, Tol::EXACT), None);
    let got = [1.0f32, 2.0, 3.5, 9.0];
    let failure = compare("x", &got, &want, Tol::new(1e-3, 1e-3)).expect("3.5 is not 3");
    assert!(failure.contains("x[2]"), "{failure}");
    assert!(
        failure.contains("3.5") && failure.contains('3'),
        "{failure}"
    );
    // Within atol + rtol·|ref| passes, and a NaN never does.
    assert_eq!(compare("x", &[3.5], &[3.0], Tol::new(0.2, 0.1)), None);
    let nan = compare("x", &[1.0, f32::NAN], &[1.0, 2.0], Tol::new(1.0, 1.0));
    assert!(nan.is_some_and(|f| f.contains("x[1]")));
    assert!(compare("x", &[1.0], &[1.0, 2.0], Tol::EXACT).is_some());
}
