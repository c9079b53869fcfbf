"""A GPT-style (left-to-right) language model from the packaged MiniLM encoder.

The model is an ordinary :class:`transformers.BertLMHeadModel` with ``is_decoder=True``: the same
BERT layers with a causal self-attention mask, and BERT's MLM head (``cls.predictions``, decoder
tied to the word embeddings) reused as the next-token head. Transfer learning: the encoder is
adapted with LoRA on every linear layer (LayerNorms and biases trained too) and the head transform
is trained in full, so the stored delta is a few MB (see :mod:`model_utils.bundled`).
``--init_from bundled:minilm-pretrained`` starts the adapter and head from our masked-LM model (a
head that already predicts tokens); ``--from_scratch true`` trains the same architecture from
random weights, every parameter, for the transfer-learning comparison.

Sequences are ``[CLS] text [SEP]`` of one document (sentences joined, cut to ``max_seq_length``);
the loss is next-token cross-entropy from ``[CLS]`` on, projected to the vocabulary only at real
positions. Held-out metrics (top-1 and perplexity) count the text tokens, not the final ``[SEP]``.

Command line: ``python -m model_utils.causal_pretrain --help`` (resumes from ``output_dir/last``).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertLMHeadModel, HfArgumentParser, PreTrainedTokenizerBase

from model_utils.data import Document, cap_source, parse_upsample, read_documents
from model_utils.adapters import minilm_dir, tidy_adapter
from model_utils.pretrain import batches, make_optimizer, tokenize_documents

LORA_TARGETS = r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"


@dataclass
class CausalArguments:
    """Every knob of a causal-LM run (CLI: ``python -m model_utils.causal_pretrain``)."""

    train_file: str = field(default="data/pretrain_train.jsonl", metadata={"help": "documents (.jsonl from model_utils.data)"})
    eval_file: str = field(default="data/pretrain_eval.jsonl", metadata={"help": "held-out documents"})
    output_dir: str = field(default="runs/causal", metadata={"help": "checkpoints, log and the final delta"})
    init_from: str = field(default="bundled:minilm-pretrained", metadata={"help": "bundled model whose adapter and MLM head start the run ('' = fresh LoRA, new head)"})
    from_scratch: bool = field(default=False, metadata={"help": "random weights, every parameter trained (the comparison twin)"})
    max_steps: int = field(default=3000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "sequences per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate (linear warmup and decay)"})
    warmup_ratio: float = field(default=0.04, metadata={"help": "share of steps spent warming up"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    max_seq_length: int = field(default=64, metadata={"help": "tokens per sequence, [CLS] and [SEP] included"})
    wordnet_share: float = field(default=0.25, metadata={"help": "most share of WordNet documents (glosses dominate the corpus)"})
    upsample: str = field(default="", metadata={"help": "repeat the training documents of some sources, e.g. 'botchan=3,chat=3'"})
    lora_rank: int = field(default=32, metadata={"help": "LoRA rank on every encoder linear layer; above the init_from adapter's rank that adapter is widened, below it the adapter's own rank and alpha are kept"})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scaling numerator"})
    eval_every: int = field(default=250, metadata={"help": "held-out evaluation every N steps (0: only at the end)"})
    eval_sequences: int = field(default=1000, metadata={"help": "held-out sequences per evaluation"})
    save_every: int = field(default=250, metadata={"help": "resumable checkpoint every N steps"})
    seed: int = field(default=42, metadata={"help": "seed of sampling, order and dropout"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    bf16: bool = field(default=True, metadata={"help": "bfloat16 autocast for the training forward"})
    micro_batches: int = field(default=2, metadata={"help": "length-sorted parts per batch, each padded to its own longest"})
    export_only: bool = field(default=False, metadata={"help": "write output_dir/last as a delta to output_dir/step-N and stop (no training)"})

    def __post_init__(self) -> None:
        parse_upsample(self.upsample)


# ---------------------------------------------------------------- data

def build_sequences(token_docs: list[list[list[int]]], tokenizer: PreTrainedTokenizerBase, max_len: int) -> list[list[int]]:
    """``[CLS] text [SEP]`` per document, cut into pieces of ``max_len``; only a document's last piece ends in [SEP]."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    sequences = []
    for doc in token_docs:
        text = [t for sentence in doc for t in sentence] + [sep]
        for i in range(0, len(text), max_len - 1):
            piece = [cls, *text[i:i + max_len - 1]]
            if len(piece) > 2 or piece[-1] != sep:
                sequences.append(piece)
    return sequences


def collate(sequences: Sequence[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask``."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


# ---------------------------------------------------------------- model

def causal_config(base: Path | None = None) -> BertConfig:
    """MiniLM's config as a decoder: causal self-attention, LM head tied to the word embeddings."""
    config = BertConfig.from_pretrained(str(base or minilm_dir()))
    config.is_decoder = True
    config.tie_word_embeddings = True
    config.architectures = ["BertLMHeadModel"]
    config.bos_token_id, config.eos_token_id = 101, 102  # [CLS] starts, [SEP] ends a text
    return config


def build_model(args: CausalArguments) -> BertLMHeadModel:
    """The decoder to train: MiniLM weights (+ the ``init_from`` delta and a LoRA adapter), or random weights."""
    from model_utils.loading import quiet_transformers

    config = causal_config()
    if args.from_scratch:
        torch.manual_seed(args.seed)
        return BertLMHeadModel(config)
    with quiet_transformers():
        model = BertLMHeadModel.from_pretrained(str(minilm_dir()), config=config, use_safetensors=True)
    rank, alpha = args.lora_rank, args.lora_alpha
    if args.init_from:
        from model_utils.bundled import artifact_dir

        stored = json.loads((artifact_dir(args.init_from) / "adapter" / "adapter_config.json").read_text())
        if int(stored["r"]) > rank:  # a continuation keeps the adapter it starts from whole (never narrowed)
            rank, alpha = int(stored["r"]), int(stored["lora_alpha"])
    return add_decoder_adapter(model, rank, alpha, args.init_from)


def add_decoder_adapter(model: BertLMHeadModel, rank: int, alpha: int, init_from: str = "") -> BertLMHeadModel:
    """Wrap ``model.bert`` in LoRA (every linear layer); train LoRA, LayerNorms, biases and the head transform.

    ``init_from`` names a bundled model whose adapter (same targets and rank) and ``cls.predictions``
    start the run; the word embeddings (the tied decoder) stay frozen.
    """
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    for p in model.parameters():
        p.requires_grad = False
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=LORA_TARGETS)
    model.bert = get_peft_model(model.bert, config)
    if init_from:
        from model_utils.bundled import artifact_dir

        delta = artifact_dir(init_from)
        set_peft_model_state_dict(model.bert, widened_adapter(delta / "adapter", rank, alpha))
        heads = load_file(str(delta / "heads.safetensors"))
        # the head, and (continuing a causal model) the LayerNorms and biases it trained in full; a masked-LM
        # delta's NSP head and pooler have no place here; the tied word embeddings stay as they are
        params = {plain_name(n): p for n, p in model.named_parameters()}
        loaded = [name for name in heads if name in params and is_extra_trainable(name)]
        with torch.no_grad():
            for name in loaded:
                params[name].copy_(heads[name])
        if not any(name.startswith("cls.predictions.") for name in loaded):
            raise ValueError(f"{init_from} has no masked/causal LM head to start from")
    for name, p in model.named_parameters():
        if "lora_" in name or is_extra_trainable(name):
            p.requires_grad = True
    return model


def widened_adapter(folder: Path, rank: int, alpha: int) -> dict[str, torch.Tensor]:
    """The LoRA weights stored in ``folder`` for an adapter of ``rank`` and ``alpha``: a stored adapter of a lower
    rank fills the first ranks (its ``B`` rescaled to the new ``alpha / rank``), the rest start as PEFT starts
    them (``A`` random, ``B`` zero), so the model computes exactly what the stored one did and has more ranks to train."""
    from safetensors.torch import load_file

    stored = json.loads((folder / "adapter_config.json").read_text())
    old_rank, old_alpha = int(stored["r"]), float(stored["lora_alpha"])
    if old_rank > rank:
        raise ValueError(f"the stored adapter has rank {old_rank}, more than --lora_rank {rank}")
    weights = {name: tensor.float() for name, tensor in load_file(str(folder / "adapter_model.safetensors")).items()}
    if old_rank == rank and old_alpha == alpha:
        return weights
    rescale = (old_alpha / old_rank) / (alpha / rank)
    widened = {}
    for name, tensor in weights.items():
        if "lora_A" in name:  # (rank, in): new rows start as PEFT starts A (Kaiming uniform), B's new columns at zero
            grown = torch.empty(rank, tensor.shape[1])
            torch.nn.init.kaiming_uniform_(grown, a=math.sqrt(5))
            grown[:old_rank] = tensor
        elif "lora_B" in name:  # (out, rank)
            grown = torch.zeros(tensor.shape[0], rank)
            grown[:, :old_rank] = tensor * rescale
        else:
            grown = tensor
        widened[name] = grown
    return widened


def is_extra_trainable(name: str) -> bool:
    """Trained in full beside LoRA: LayerNorms and biases of the encoder, the head (not the tied decoder)."""
    if name.startswith("cls.predictions."):
        return "decoder" not in name
    return "embeddings.word_embeddings" not in name and ("LayerNorm" in name or name.endswith(".bias"))


def plain_name(name: str) -> str:
    """A parameter name of the PEFT-wrapped model as in the plain ``BertLMHeadModel``."""
    return name.replace("bert.base_model.model.", "bert.").replace(".base_layer.", ".")


def extra_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The fully trained tensors (head, LayerNorms, biases) under their plain model names."""
    return {plain_name(n): p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if p.requires_grad and "lora_" not in n}


# ---------------------------------------------------------------- loss, step, evaluation

def causal_losses(model: BertLMHeadModel, batch: dict[str, torch.Tensor], count_sep: bool = True) -> dict[str, torch.Tensor]:
    """Next-token loss over real positions; ``correct``/``count`` for top-1 (``[SEP]`` targets counted if ``count_sep``)."""
    hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["input_ids"][:, 1:]
    real = batch["attention_mask"][:, 1:].bool()
    logits = model.cls(hidden[:, :-1][real])
    wanted = targets[real]
    loss_each = F.cross_entropy(logits.float(), wanted, reduction="none")
    scored = torch.ones_like(wanted, dtype=torch.bool) if count_sep else wanted != model.config.eos_token_id
    return {"loss": loss_each.mean(), "loss_sum": loss_each[scored].sum(),
            "correct": (logits.argmax(-1) == wanted)[scored].sum(), "count": scored.sum()}


def training_step(model: BertLMHeadModel, batch: dict[str, torch.Tensor], micro_batches: int, bf16: bool) -> float:
    """Forward and backward of one batch in length-sorted parts; returns the mean token loss."""
    order = batch["attention_mask"].sum(1).argsort(descending=True)
    total = int(batch["attention_mask"][:, 1:].sum())
    loss = 0.0
    for rows in order.chunk(max(1, micro_batches)):
        width = int(batch["attention_mask"][rows].sum(1).max())
        part = {k: v[rows, :width] for k, v in batch.items()}
        with torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16, enabled=bf16):
            result = causal_losses(model, part)
        weighted = result["loss"] * int(part["attention_mask"][:, 1:].sum()) / total
        weighted.backward()
        loss += float(weighted.detach())
    return loss


@torch.inference_mode()
def evaluate(model: BertLMHeadModel, eval_batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Held-out next-token top-1 accuracy, loss and perplexity over the text tokens (``[SEP]`` not counted)."""
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for batch in eval_batches:
        r = causal_losses(model, batch, count_sep=False)
        loss_sum, correct, count = loss_sum + float(r["loss_sum"]), correct + int(r["correct"]), count + int(r["count"])
    model.train(was_training)
    loss = loss_sum / max(count, 1)
    return {"loss": loss, "top1": correct / max(count, 1), "perplexity": math.exp(min(loss, 50.0)), "tokens": count}


def heldout_sequences(docs: list[Document], tokenizer, args: CausalArguments) -> list[list[int]]:
    """The fixed held-out sequences (same WordNet cap as training, shuffled with a fixed seed)."""
    docs = cap_source(docs, "wordnet", args.wordnet_share, random.Random(args.seed + 1))
    sequences = build_sequences(tokenize_documents(docs, tokenizer), tokenizer, args.max_seq_length)
    random.Random(args.seed + 2).shuffle(sequences)
    return sequences[:args.eval_sequences]


def eval_batches_of(sequences: list[list[int]], pad_id: int, size: int = 64) -> list[dict[str, torch.Tensor]]:
    """Length-sorted evaluation batches (less padding)."""
    ordered = sorted(sequences, key=len)
    return [collate(ordered[i:i + size], pad_id) for i in range(0, len(ordered), size)]


# ---------------------------------------------------------------- checkpoints and delta

def save_delta(model: torch.nn.Module, out_dir: Path) -> None:
    """Store the trained delta: ``adapter/`` (LoRA) and ``heads.safetensors`` (head, LayerNorms, biases), or the whole model from scratch."""
    from peft import PeftModel
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(model.bert, PeftModel):
        save_file(extra_state(model), str(out_dir / "heads.safetensors"))
        model.bert.save_pretrained(str(out_dir / "adapter"))
        tidy_adapter(out_dir / "adapter")
    else:
        # named_parameters lists each tied tensor once (decoder weight = word embeddings, decoder bias = bias)
        state = {k: v.detach().cpu().contiguous() for k, v in model.named_parameters()}
        save_file(state, str(out_dir / "model.safetensors"))
    config = model.config.to_dict()
    config.pop("_name_or_path", None)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))


def save_checkpoint(path: Path, model, optimizer, scheduler, step: int, log: list[dict]) -> None:
    """Atomically write a resumable checkpoint (every trainable tensor, optimizer, schedule, RNG) to ``path``."""
    import shutil

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    torch.save({"params": trainable, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, tmp / "trainer_state.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "log": log}))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[int, list[dict]]:
    """Restore :func:`save_checkpoint`'s state; returns ``(step, log)``."""
    state = torch.load(path / "trainer_state.pt", weights_only=True)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["params"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    info = json.loads((path / "state.json").read_text())
    return info["step"], info["log"]


# ---------------------------------------------------------------- training loop

def prepare_data(args: CausalArguments, tokenizer, train_docs=None, eval_docs=None):
    """Training sequences and fixed held-out batches."""
    train_docs = train_docs if train_docs is not None else read_documents(Path(args.train_file))
    eval_docs = eval_docs if eval_docs is not None else read_documents(Path(args.eval_file))
    train_docs = cap_source(train_docs, "wordnet", args.wordnet_share, random.Random(args.seed))
    passes = parse_upsample(args.upsample)
    train_docs = [d for d in train_docs for _ in range(passes.get(d.source, 1))]
    sequences = build_sequences(tokenize_documents(train_docs, tokenizer), tokenizer, args.max_seq_length)
    held_out = eval_batches_of(heldout_sequences(eval_docs, tokenizer, args), tokenizer.pad_token_id)
    if len(sequences) < args.batch_size or not held_out:
        raise ValueError("Not enough text: need sequences for both training and evaluation.")
    return sequences, held_out


def train(args: CausalArguments, train_docs: list[Document] | None = None, eval_docs: list[Document] | None = None,
          model_and_tokenizer=None) -> dict:
    """Run (or resume) causal-LM training; returns ``{"metrics", "log", "steps", "seconds", "output", "model"}``."""
    from transformers import AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, tokenizer = model_and_tokenizer or (build_model(args), AutoTokenizer.from_pretrained(str(minilm_dir())))
    sequences, held_out = prepare_data(args, tokenizer, train_docs, eval_docs)
    optimizer, scheduler = make_optimizer(model, args, args.max_steps)
    out = Path(args.output_dir)
    step, log = 0, []
    if (out / "last").is_dir():
        step, log = load_checkpoint(out / "last", model, optimizer, scheduler)
    stream = batches(sequences, args.batch_size, random.Random(args.seed))
    for _ in range(step):  # replay the data order up to the resumed step
        next(stream)
    seconds = _run_steps(model, tokenizer, args, stream, held_out, optimizer, scheduler, step, log)
    final = {"kind": "eval", "step": args.max_steps, **evaluate(model, held_out)}
    log.append(final)
    print(json.dumps(final), flush=True)
    save_delta(model, out / "final")
    (out / "log.json").write_text(json.dumps({"args": asdict(args), "log": log, "seconds": seconds}, indent=1))
    return {"metrics": final, "log": log, "steps": args.max_steps, "seconds": seconds,
            "output": str(out / "final"), "model": model, "tokenizer": tokenizer}


def _run_steps(model, tokenizer, args: CausalArguments, stream: Iterator, held_out, optimizer, scheduler,
               step: int, log: list[dict]) -> float:
    """The optimisation loop from ``step`` to ``max_steps`` with periodic evaluation and checkpoints; returns seconds."""
    out = Path(args.output_dir)
    model.train()
    started = time.perf_counter()
    while step < args.max_steps:
        batch = collate(next(stream), tokenizer.pad_token_id)
        loss = training_step(model, batch, args.micro_batches, args.bf16)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        log.append({"kind": "train", "step": step, "loss": loss, "seconds": time.perf_counter() - started})
        if step % 25 == 0:
            print(json.dumps(log[-1]), flush=True)
        if args.eval_every and step % args.eval_every == 0 and step < args.max_steps:
            log.append({"kind": "eval", "step": step, **evaluate(model, held_out)})
            print(json.dumps(log[-1]), flush=True)
        if args.save_every and step % args.save_every == 0 and step < args.max_steps:
            save_checkpoint(out / "last", model, optimizer, scheduler, step, log)
    return time.perf_counter() - started


def export_last(args: CausalArguments) -> Path:
    """The delta of the resumable checkpoint ``output_dir/last`` (a stopped run), written to ``output_dir/step-N``."""
    model = build_model(args)
    params = dict(model.named_parameters())
    state = torch.load(Path(args.output_dir) / "last" / "trainer_state.pt", weights_only=True)
    with torch.no_grad():
        for name, value in state["params"].items():
            params[name].copy_(value)
    step = json.loads((Path(args.output_dir) / "last" / "state.json").read_text())["step"]
    out = Path(args.output_dir) / f"step-{step}"
    save_delta(model, out)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    (args,) = HfArgumentParser(CausalArguments).parse_args_into_dataclasses(args=argv)
    if args.export_only:
        print(export_last(args))
        return
    result = train(args)
    print(json.dumps({"steps": result["steps"], "seconds": round(result["seconds"], 1), **result["metrics"]}, indent=2))


if __name__ == "__main__":
    main()
