//! Arbitrary bytes as a tcprules text and as a rules CDB: no input may panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| rqmail_rules::fuzz_one(input));
