"""Generated Open Inference Protocol v2 messages (from protos/grpc_predict_v2.proto; see generate.py)."""
