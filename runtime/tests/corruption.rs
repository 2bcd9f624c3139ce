//! Damaged files: every truncation and thousands of bit flips of a valid model. Each must
//! either load and run, or return an error; nothing may panic. Flips are tried twice: as
//! they are (the checksum must catch them) and with the checksum recomputed, so that the
//! FlatBuffers verifier and the semantic checks see the damage.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{tiny_cnn, Rng};
use lopper_runtime::format::footer::{checksum, FOOTER_LEN};
use lopper_runtime::{LoadError, Model, Session};

/// Loads `bytes` and, if that succeeds, runs the model once. Returns whether it loaded.
fn load_and_run(bytes: Vec<u8>) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| match Model::from_vec(bytes) {
        Ok(model) => {
            if let Ok(mut session) = Session::new(&model) {
                let len = session.input_mut(0).map(|x| x.len()).unwrap_or(0);
                let _ = session.set_input(0, &vec![0.5; len]);
                session.run();
            }
            true
        }
        Err(e) => {
            // Every error must render to a message.
            assert!(!e.to_string().is_empty());
            false
        }
    }))
    .map_err(|_| "panicked".to_string())
}

/// Recomputes the footer checksum after an edit.
fn reseal(bytes: &mut [u8]) {
    let end = bytes.len() - 8;
    let crc = checksum(&bytes[..end]);
    bytes[end..end + 4].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn the_valid_model_loads_and_runs() {
    assert_eq!(load_and_run(tiny_cnn()), Ok(true));
}

#[test]
fn every_truncation_is_refused() {
    let file = tiny_cnn();
    for len in 0..file.len() {
        let loaded = load_and_run(file[..len].to_vec())
            .unwrap_or_else(|e| panic!("truncated to {len} bytes: {e}"));
        assert!(!loaded, "truncated to {len} bytes but loaded");
    }
}

#[test]
fn every_single_bit_flip_is_caught_by_the_checksum() {
    let file = tiny_cnn();
    let mut rng = Rng::new(1);
    for _ in 0..3000 {
        let mut bytes = file.clone();
        let bit = rng.below(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let loaded = load_and_run(bytes).unwrap_or_else(|e| panic!("flip of bit {bit}: {e}"));
        assert!(!loaded, "flip of bit {bit} went unnoticed");
    }
}

#[test]
fn resealed_bit_flips_load_or_fail_cleanly() {
    let file = tiny_cnn();
    let flatbuffer_len = {
        let end = file.len() - FOOTER_LEN;
        u64::from_le_bytes(file[end..end + 8].try_into().unwrap()) as usize
    };
    let mut rng = Rng::new(2);
    let (mut loaded, mut refused) = (0, 0);
    for round in 0..4000 {
        let mut bytes = file.clone();
        // Most flips hit the FlatBuffer (the structure), the rest anywhere; 1 to 3 bits.
        let region = if round % 4 == 0 {
            bytes.len() - 8
        } else {
            flatbuffer_len
        };
        let flips: Vec<usize> = (0..1 + rng.below(3))
            .map(|_| rng.below(region * 8))
            .collect();
        for &bit in &flips {
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        reseal(&mut bytes);
        match load_and_run(bytes) {
            Ok(true) => loaded += 1,
            Ok(false) => refused += 1,
            Err(e) => panic!("flips of bits {flips:?}: {e}"),
        }
    }
    eprintln!(
        "resealed flips: {loaded} loaded, {refused} refused of {} bytes",
        file.len()
    );
    // Both outcomes must occur, or the test is not exercising the verifier.
    assert!(
        loaded > 0 && refused > 0,
        "loaded {loaded}, refused {refused}"
    );
}

#[test]
fn errors_name_what_is_wrong() {
    let file = tiny_cnn();
    let err = |bytes: Vec<u8>| Model::from_vec(bytes).err().expect("must fail");
    assert!(matches!(
        err(file[..10].to_vec()),
        LoadError::TooShort { .. }
    ));

    let mut bad = file.clone();
    bad[20] ^= 1;
    assert!(matches!(err(bad), LoadError::Checksum { .. }));

    let mut bad = file.clone();
    bad[4..8].copy_from_slice(b"ONNX");
    reseal(&mut bad);
    assert!(matches!(err(bad), LoadError::Identifier));

    let mut bad = file.clone();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(b"XXXX");
    assert!(matches!(err(bad), LoadError::NoFooter { .. }));
}
