#![no_main]

// The body is shared with daq/tests/fuzz_corpus.rs; see daq::fuzzing.
libfuzzer_sys::fuzz_target!(|data: &[u8]| daq::fuzzing::tmch(data));
