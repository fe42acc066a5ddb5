"""lasl-backend: a Label Studio ML backend for Chinese EMR NER with LASL active learning."""

__version__ = "0.1.0"
