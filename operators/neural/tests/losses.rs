//! Loss parity with sentence-transformers (PyTorch, CPU): on the tiny BERT
//! fixture and a batch of three (query, positive, negative) triples, the
//! MultipleNegativesRankingLoss (with a hard negative, in-batch only, and
//! symmetric)
//! and the MarginMSELoss (with 1, 3 and 7 negatives per query, and with
//! in-batch MNRL added as `op: distill` does), and their gradients on three parameters, equal
//! `fixtures/tiny-bert/losses.json` (made by `scripts/loss_references.py`,
//! float64, eval mode) to 1e-5, also with every text in its own forward
//! pass (training runs texts in groups of about one length).

use std::path::Path;

use burn::backend::Autodiff;
use burn::tensor::{Tensor, TensorData};
use dflow_op_neural::Cpu;
use dflow_op_neural::encoder::Precision;
use dflow_op_neural::losses::{embed_grouped, embed_tensor, margin_mse, mnrl, mnrl_symmetric};
use dflow_op_neural::model::Model;
use serde_json::Value;

mod common;
use common::{floats, strs as strings};

type Train = Autodiff<Cpu>;

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

fn close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: sizes");
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d <= 1e-5, "{name}: differs by {d}");
}

fn check(which: &str, loss_of: impl Fn(&Model<Train>, &Value) -> Tensor<Train, 1>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("losses.json")).expect("read"))
            .expect("json");
    let model = Model::<Train>::load(&dir, 512, &Default::default()).expect("loads");
    let loss = loss_of(&model, &r);
    let value: f32 = loss.clone().into_data().to_vec::<f32>().expect("loss")[0];
    let want = &r[which];
    close(
        &format!("{which} loss"),
        &[value],
        &[want["loss"].as_f64().expect("loss") as f32],
    );
    let grads = loss.backward();
    let enc = &model.encoder;
    let grad2 = |p: &burn::module::Param<Tensor<Train, 2>>| -> Vec<f32> {
        p.grad(&grads)
            .expect("grad")
            .into_data()
            .to_vec::<f32>()
            .expect("values")
    };
    let grad1 = |p: &burn::module::Param<Tensor<Train, 1>>| -> Vec<f32> {
        p.grad(&grads)
            .expect("grad")
            .into_data()
            .to_vec::<f32>()
            .expect("values")
    };
    let g = &want["grads"];
    // Ours is [in, out]; PyTorch's Linear weight is [out, in].
    let [i, o] = enc.layers[0].query.weight.val().dims();
    close(
        &format!("{which} grad query.weight"),
        &transpose(&grad2(&enc.layers[0].query.weight), i, o),
        &floats(&g["0.model.encoder.layer.0.attention.self.query.weight"]),
    );
    close(
        &format!("{which} grad output.dense.bias"),
        &grad1(&enc.layers[1].output.bias),
        &floats(&g["0.model.encoder.layer.1.output.dense.bias"]),
    );
    close(
        &format!("{which} grad embeddings.LayerNorm.weight"),
        &grad1(&enc.embedding_norm.gamma),
        &floats(&g["0.model.embeddings.LayerNorm.weight"]),
    );
}

fn embed(model: &Model<Train>, texts: Vec<&str>) -> Tensor<Train, 2> {
    embed_tensor(model, &texts).expect("embed")
}

#[test]
fn mnrl_with_hard_negatives_matches_sentence_transformers() {
    check("mnrl_hard", |m, r| {
        let q = embed(m, strings(&r["queries"]));
        let mut c = strings(&r["positives"]);
        c.extend(strings(&r["negatives"]));
        mnrl(q, embed(m, c), 20.0)
    });
}

/// Each text in its own forward pass (groups of one), the rows put back
/// in order: the loss and gradients are those of one padded batch.
#[test]
fn mnrl_over_length_groups_matches_sentence_transformers() {
    check("mnrl_hard", |m, r| {
        let grouped = |texts: Vec<&str>| {
            embed_grouped(&m.encoder, &m.tokenizer, &m.profile, &texts, 1).expect("embed")
        };
        let q = grouped(strings(&r["queries"]));
        let mut c = strings(&r["positives"]);
        c.extend(strings(&r["negatives"]));
        mnrl(q, grouped(c), 20.0)
    });
}

#[test]
fn mnrl_in_batch_matches_sentence_transformers() {
    check("mnrl_in_batch", |m, r| {
        mnrl(
            embed(m, strings(&r["queries"])),
            embed(m, strings(&r["positives"])),
            20.0,
        )
    });
}

#[test]
fn symmetric_mnrl_matches_sentence_transformers() {
    check("mnrl_symmetric", |m, r| {
        mnrl_symmetric(
            embed(m, strings(&r["queries"])),
            embed(m, strings(&r["positives"])),
            20.0,
        )
    });
}

#[test]
fn margin_mse_matches_sentence_transformers() {
    check("margin_mse", |m, r| {
        let margins = floats(&r["teacher_margins"]);
        let n = margins.len();
        let teacher =
            Tensor::<Train, 1>::from_data(TensorData::new(margins, [n]), &Default::default());
        margin_mse(
            embed(m, strings(&r["queries"])),
            embed(m, strings(&r["positives"])),
            embed(m, strings(&r["negatives"])),
            &[0, 1, 2],
            teacher,
        )
    });
}

/// MarginMSE over the first `k` of each query's negatives (as `op:
/// distill` lays them out: query by query), plus `mnrl_weight` times the
/// in-batch MNRL.
fn margin_mse_k(m: &Model<Train>, r: &Value, k: usize, mnrl_weight: f32) -> Tensor<Train, 1> {
    let (mut texts, mut owners, mut margins) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (negs, ms)) in r["negatives_k"]
        .as_array()
        .expect("negatives_k")
        .iter()
        .zip(r["margins_k"].as_array().expect("margins_k"))
        .enumerate()
    {
        texts.extend(strings(negs).into_iter().take(k));
        margins.extend(floats(ms).into_iter().take(k));
        owners.extend(std::iter::repeat_n(i, k));
    }
    let n = margins.len();
    let teacher = Tensor::<Train, 1>::from_data(TensorData::new(margins, [n]), &Default::default());
    let queries = embed(m, strings(&r["queries"]));
    let positives = embed(m, strings(&r["positives"]));
    let loss = margin_mse(
        queries.clone(),
        positives.clone(),
        embed(m, texts),
        &owners,
        teacher,
    );
    if mnrl_weight > 0.0 {
        loss + mnrl(queries, positives, 20.0) * mnrl_weight
    } else {
        loss
    }
}

#[test]
fn margin_mse_over_several_negatives_matches_sentence_transformers() {
    for k in [1, 3, 7] {
        check(&format!("margin_mse_k{k}"), |m, r| {
            margin_mse_k(m, r, k, 0.0)
        });
    }
}

#[test]
fn distillation_with_in_batch_mnrl_matches_sentence_transformers() {
    check("distill_k3", |m, r| margin_mse_k(m, r, 3, 0.5));
}

/// Mixed precision (`Precision::Bf16`: the dense products in bfloat16,
/// through Flex's bf16 product on the CPU): the vectors move (the casts
/// happen), and the loss and the first layer's query gradient, which flows
/// back through every bf16 product, stay near float64's references.
#[test]
fn mnrl_in_mixed_precision_stays_near_sentence_transformers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("losses.json")).expect("read"))
            .expect("json");
    let mut model = Model::<Train>::load(&dir, 512, &Default::default()).expect("loads");
    let vectors = |m: &Model<Train>| {
        embed(m, strings(&r["queries"]))
            .into_data()
            .to_vec::<f32>()
            .expect("values")
    };
    let full = vectors(&model);
    model.encoder.precision = Precision::Bf16;
    let half = vectors(&model);
    let moved = full
        .iter()
        .zip(&half)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved > 1e-6 && moved < 1e-2,
        "bf16 moved the vectors by {moved}"
    );

    let q = embed(&model, strings(&r["queries"]));
    let mut c = strings(&r["positives"]);
    c.extend(strings(&r["negatives"]));
    let loss = mnrl(q, embed(&model, c), 20.0);
    let value: f32 = loss.clone().into_data().to_vec::<f32>().expect("loss")[0];
    let want = &r["mnrl_hard"];
    let want_loss = want["loss"].as_f64().expect("loss") as f32;
    assert!(
        (value - want_loss).abs() <= 1e-2 * want_loss.abs(),
        "bf16 loss {value} against {want_loss}"
    );
    let grads = loss.backward();
    let query = &model.encoder.layers[0].query.weight;
    let [i, o] = query.val().dims();
    let got = query
        .grad(&grads)
        .expect("grad")
        .into_data()
        .to_vec::<f32>()
        .expect("values");
    let got = transpose(&got, i, o);
    let want = floats(&want["grads"]["0.model.encoder.layer.0.attention.self.query.weight"]);
    let dot: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cosine = dot / (norm(&got) * norm(&want));
    let off = (norm(&got) - norm(&want)).abs() / norm(&want);
    assert!(
        cosine >= 0.99 && off <= 0.05,
        "bf16 query gradient: cosine {cosine}, norm off by {off}"
    );
}
