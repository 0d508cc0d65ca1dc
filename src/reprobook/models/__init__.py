"""Language and vision-language models: real pretrained weights shipped in pip packages (and hub
checkpoints for the ``full`` presets), small models trained from scratch, and
the offline text they are trained on."""

from .clip import ClipModel, ClipTokenizer, load_open_clip, tiny_clip, train_clip, train_clip_tokenizer
from .corpus import python_docs_paragraphs
from .minilm import load_minilm, minilm_embed, minilm_path
from .pretrained import SMOLLM2, ModelUnavailable, chat_template_pieces, load_causal_lm, smollm2_gguf_path
from .tiny import EOS, next_token_loss, pack_documents, tiny_llama, tiny_phi, train_bpe_tokenizer, train_causal_lm

__all__ = ["ClipModel", "ClipTokenizer", "EOS", "SMOLLM2", "ModelUnavailable", "chat_template_pieces", "load_causal_lm",
           "load_minilm", "load_open_clip", "minilm_embed", "minilm_path", "next_token_loss", "pack_documents", "python_docs_paragraphs", "smollm2_gguf_path",
           "tiny_clip", "tiny_llama", "tiny_phi", "train_bpe_tokenizer", "train_causal_lm", "train_clip",
           "train_clip_tokenizer"]
