"""The ways to connect a client to KSeF: the signed-XML login (methods 1 and 2) and the upload (method 3)."""
