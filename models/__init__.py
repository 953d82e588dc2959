"""The bundled model and equation files (installed as the package data salspike.models; see salspike/resources.py)."""
