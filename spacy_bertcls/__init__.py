"""spacy-bertcls: a BERT-family text classifier for spaCy pipelines.

Importing the package registers the ``bert_textcat`` factory and the
``spacy_bertcls.BertClassifier.v1`` architecture (entry points do the same for ``spacy train``
without ``--code``).
"""

from .errors import BertclsError

__version__ = "0.1.0"

__all__ = ["BertclsError", "__version__"]
