"""Ingresses: the listeners clients call (HTTP, gRPC). Each reads sockets, writes replies, and drives
one Exchange per call (proxy/exchange.py)."""
