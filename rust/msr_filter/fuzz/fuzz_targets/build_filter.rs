// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Fuzz target: build filters from arbitrary bytes (native and compat
//! layouts, allocation failures, bitmap copies from fuzz bytes with random
//! EFAULT) and check them against the reference model. The checker is the
//! one `cargo test` runs on the committed corpus (tests/fuzz_corpus.rs).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/mod.rs"]
mod support;

fuzz_target!(|data: &[u8]| {
    support::check_fuzz_input(data);
});
