"""Adapters for RAG frameworks. Each submodule imports its framework when it is imported
(not when ``crossrank`` is), and raises an ImportError naming the extra to install:

* :mod:`crossrank.integrations.langchain` (``pip install crossrank[langchain]``)
* :mod:`crossrank.integrations.llama_index` (``pip install crossrank[llama-index]``)
"""
