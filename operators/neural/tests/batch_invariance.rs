//! The CPU encoder is batch-invariant: a text's vector (and a pair's
//! cross-encoder logits) has the same bits whichever texts share its batch
//! and however far that batch is padded. The vector store
//! (`src/vector_store.rs`) relies on it to hand one node the vectors
//! another computed, exactly.
//!
//! In f32 and with the dense products in bf16; tiny random checkpoints
//! always, multilingual-e5-small and all-MiniLM-L6-v2 too when
//! `DFLOW_TEST_MODELS` is set.

use std::path::{Path, PathBuf};

use dflow_op_neural::Cpu;
use dflow_op_neural::encoder::Precision;
use dflow_op_neural::model::Model;

const TEXTS: [&str; 5] = [
    "query: how do I return an item?",
    "passage: You can return any item within thirty days of delivery. Print the label from \
     your account page, pack the item in its original box and drop it at any post office. \
     Refunds arrive within five working days after we receive the parcel.",
    "passage: Shipping is free above fifty euros.",
    "query: Где находится ваш магазин?",
    "passage: 我们的商店位于市中心，周一至周六营业。",
];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check_embeddings(dir: &Path) {
    check_embeddings_in(dir, Precision::F32);
    check_embeddings_in(dir, Precision::Bf16);
}

fn check_embeddings_in(dir: &Path, precision: Precision) {
    let mut model = Model::<Cpu>::load(dir, 128, &Default::default()).expect("load");
    model.encoder.precision = precision;
    let alone: Vec<Vec<u32>> = TEXTS
        .iter()
        .map(|t| bits(&model.embed(&[t], 1).expect("alone")[0]))
        .collect();
    // All together, in batches of every size (each pads to its longest),
    // and each text beside many copies of the longest.
    for batch_size in 1..=TEXTS.len() {
        let together = model.embed(&TEXTS, batch_size).expect("together");
        for (i, v) in together.iter().enumerate() {
            assert_eq!(
                bits(v),
                alone[i],
                "{} ({precision:?}): text {i} in batches of {batch_size}",
                dir.display()
            );
        }
    }
    for (i, t) in TEXTS.iter().enumerate() {
        let mut crowd = vec![TEXTS[1]; 9];
        crowd.insert(4, t);
        let v = model.embed(&crowd, 16).expect("crowd");
        assert_eq!(
            bits(&v[4]),
            alone[i],
            "{} ({precision:?}): text {i} in a crowd",
            dir.display()
        );
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn tiny_encoders_give_a_text_the_same_bits_in_any_batch() {
    check_embeddings(&fixture("tiny-bert"));
    check_embeddings(&fixture("tiny-xlmr"));
}

#[test]
fn cross_encoder_logits_do_not_depend_on_the_batch() {
    for name in ["tiny-bert-ce", "tiny-xlmr-ce"] {
        let model = Model::<Cpu>::load(&fixture(name), 128, &Default::default()).expect("load");
        let pairs: Vec<(&str, &str)> = TEXTS.iter().map(|t| (TEXTS[0], *t)).collect();
        let alone: Vec<Vec<u32>> = pairs
            .iter()
            .map(|p| bits(&model.score_pairs(&[*p], 1).expect("alone")[0]))
            .collect();
        let together = model.score_pairs(&pairs, 8).expect("together");
        for (i, v) in together.iter().enumerate() {
            assert_eq!(bits(v), alone[i], "{name}: pair {i} in one batch");
        }
        // Each pair among long ones, so its batch pads far past it.
        for (i, p) in pairs.iter().enumerate() {
            let mut crowd = vec![(TEXTS[1], TEXTS[1]); 9];
            crowd.insert(4, *p);
            let v = model.score_pairs(&crowd, 16).expect("crowd");
            assert_eq!(bits(&v[4]), alone[i], "{name}: pair {i} in a crowd");
        }
    }
}

#[test]
fn real_encoders_give_a_text_the_same_bits_in_any_batch() {
    let Some(dir) = dflow_engine::testing::test_models("") else {
        return;
    };
    check_embeddings(&dir.join("multilingual-e5-small"));
    check_embeddings(&dir.join("all-MiniLM-L6-v2"));
}
