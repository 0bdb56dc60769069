"""The KSeF 2.0 REST API: environments, errors in plain words, results, transport, the client, Latarnia."""
