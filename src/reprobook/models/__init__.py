"""Language models: real pretrained weights shipped in pip packages (and hub
checkpoints for the ``full`` presets), small models trained from scratch, and
the offline text they are trained on."""

from .corpus import python_docs_paragraphs
from .pretrained import SMOLLM2, ModelUnavailable, chat_template_pieces, load_causal_lm, smollm2_gguf_path
from .tiny import EOS, next_token_loss, pack_documents, tiny_llama, tiny_phi, train_bpe_tokenizer, train_causal_lm

__all__ = ["EOS", "SMOLLM2", "ModelUnavailable", "chat_template_pieces", "load_causal_lm", "next_token_loss", "pack_documents",
           "python_docs_paragraphs", "smollm2_gguf_path", "tiny_llama", "tiny_phi", "train_bpe_tokenizer",
           "train_causal_lm"]
