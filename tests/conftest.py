"""Shared test fixtures: tiny models built on the fly, offline mode, and a running app server.

Tiny models are 2-layer BERT/DistilBERT with a ~100-token WordPiece vocabulary, saved as
safetensors with a fast tokenizer; they load in well under a second. Tests never touch the
network: HF_HUB_OFFLINE is set for the whole session.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers/huggingface_hub are imported
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token"  # PLM_ADMIN_TOKEN of the test servers
ARTIFACTS = ROOT / "test-artifacts"

TINY_WORDS = (
    "the a an is was are be to of and in on at it he she they i you we this that my his her "
    "cat dog bird sat ran sleeps eats mat sofa house car park tree paris france london england "
    "capital city country good bad great terrible happy sad love hate movie film book food "
    "very not so but then after before rain sun day night morning hungry ate dinner"
).split()
TINY_VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(".,!?'") + TINY_WORDS
              + list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
              + ["##s", "##ed", "##ing"])


def tiny_tokenizer():
    """A fast uncased WordPiece tokenizer over TINY_VOCAB."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab={tok: i for i, tok in enumerate(TINY_VOCAB)}, do_lower_case=True,
                             model_max_length=64)


def tiny_bpe_tokenizer():
    """A GPT-2-style byte-level BPE tokenizer (300 tokens, ``<|endoftext|>`` its only special) trained on
    TINY_WORDS: no special tokens around a text, a leading space inside a token (``Ġcat``)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    sentences = [" ".join(TINY_WORDS), "the cat sat on the mat.", "paris is the capital of france.",
                 "i love this movie!", "she ate dinner after the rain."]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences * 3, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    end = "<|endoftext|>"
    return GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=end, eos_token=end, unk_token=end,
                             model_max_length=256)


def _tiny_causal(kind: str):
    """(model, tokenizer) of a tiny left-to-right LM: "gpt2" (GPT-2 with the byte-level BPE) or "bert-decoder"
    (a BertLMHeadModel with ``is_decoder=True`` and the WordPiece vocabulary, like bundled:minilm-causal)."""
    import transformers as tf

    if kind == "gpt2":
        tokenizer = tiny_bpe_tokenizer()
        config = tf.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tokenizer), n_positions=256,
                               bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
        return tf.GPT2LMHeadModel(config), tokenizer
    tokenizer = tiny_tokenizer()
    config = tf.BertConfig(vocab_size=len(TINY_VOCAB), max_position_embeddings=64, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, is_decoder=True, tie_word_embeddings=True,
                           bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    return tf.BertLMHeadModel(config), tokenizer


def build_tiny_model(folder: Path, kind: str = "bert-pretraining", seed: int = 0, **sizes: int) -> Path:
    """Save a tiny randomly initialised model + tokenizer in ``folder``; returns the folder.

    kind: "bert-pretraining" (MLM + NSP heads), "bert-mlm" (MLM head only),
    "distilbert-mlm" (no NSP head at all), "bert-classifier" (2 labels), and the left-to-right LMs
    "gpt2" (byte-level BPE) and "bert-decoder" (``is_decoder=True``). ``sizes`` override the
    BERT config's tiny dimensions (e.g. ``hidden_size=512`` for a model whose memory is measurable).
    """
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=len(TINY_VOCAB), max_position_embeddings=64)
    if kind in ("gpt2", "bert-decoder"):
        model, tokenizer = _tiny_causal(kind)
        model.eval().save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder
    if kind.startswith("distilbert"):
        config = tf.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, **common)
        model = tf.DistilBertForMaskedLM(config)
    else:
        dims = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                **sizes}
        config = tf.BertConfig(id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
                               **dims, **common)
        cls = {"bert-pretraining": tf.BertForPreTraining, "bert-mlm": tf.BertForMaskedLM,
               "bert-classifier": tf.BertForSequenceClassification}[kind]
        model = cls(config)
    model.eval().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with a 2-layer BertForPreTraining (MLM + NSP heads) and its fast tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_checkpoints_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoints directory holding local:tiny-bert, local:tiny-mlm, local:tiny-distilbert, local:tiny-classifier
    and the left-to-right local:tiny-gpt2 and local:tiny-decoder."""
    root = tmp_path_factory.mktemp("checkpoints")
    build_tiny_model(root / "tiny-bert", "bert-pretraining")
    build_tiny_model(root / "tiny-mlm", "bert-mlm", seed=1)
    build_tiny_model(root / "tiny-distilbert", "distilbert-mlm", seed=2)
    build_tiny_model(root / "tiny-classifier", "bert-classifier", seed=3)
    build_tiny_model(root / "tiny-gpt2", "gpt2", seed=4)
    build_tiny_model(root / "tiny-decoder", "bert-decoder", seed=5)
    return root


@pytest.fixture
def tiny_env(tiny_checkpoints_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point settings at the tiny checkpoints (defaults local:tiny-bert) and use a fresh manager."""
    from model_utils import manager

    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(tiny_checkpoints_dir))
    for var in ("PLM_DEFAULT_FILL_MASK", "PLM_DEFAULT_NEXT_SENTENCE", "PLM_DEFAULT_ATTENTION", "PLM_DEFAULT_CONTEXTUAL"):
        monkeypatch.setenv(var, "local:tiny-bert")
    monkeypatch.setenv("PLM_DEFAULT_TEXT_CLASSIFICATION", "local:tiny-classifier")
    monkeypatch.setenv("PLM_DEVICE", "cpu")
    monkeypatch.setattr(manager, "_manager", manager.ModelManager())
    return tiny_checkpoints_dir


def require_bundled(name: str = "bundled:minilm-pretrained") -> None:
    """Fail the calling test when the committed artifact of bundled model ``name`` is missing or broken.

    The bundled models are part of the app (its offline defaults): a broken one is a failure, never a skip.
    """
    from model_utils.bundled import available

    if not available(name):
        pytest.fail(f"the committed artifact of {name} is missing or broken (model_utils/bundled)")


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app did not start within {timeout}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_app(log: Path, **env_vars: str):
    """Run ``python app.py`` on a free port with ``env_vars`` added; yields (url, process)."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "PLM_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONUNBUFFERED": "1", **env_vars}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_server(url, proc, log, timeout=180)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def app_server(tiny_checkpoints_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Run ``python app.py`` on a free port with the tiny local models as defaults; yields its URL."""
    log = tmp_path_factory.mktemp("app") / "app.log"
    with running_app(log, PLM_CHECKPOINTS_DIR=str(tiny_checkpoints_dir),
                     PLM_DEFAULT_FILL_MASK="local:tiny-bert", PLM_DEFAULT_NEXT_SENTENCE="local:tiny-bert",
                     PLM_DEFAULT_ATTENTION="local:tiny-bert", PLM_DEFAULT_CONTEXTUAL="local:tiny-bert",
                     PLM_DEFAULT_TEXT_CLASSIFICATION="local:tiny-classifier",
                     PLM_DEFAULT_TEXT_GENERATION="local:tiny-gpt2",
                     PLM_DEFAULT_PRETRAIN_BASE="local:tiny-bert", PLM_ADMIN_TOKEN=ADMIN_TOKEN,
                     PLM_DATA_DIR=str(tmp_path_factory.mktemp("data"))) as (url, _):
        yield url
