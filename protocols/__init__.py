"""The bundled protocol files (installed as the package data salspike.protocol_files; see salspike/resources.py)."""
