"""t2m inference server: MotionColBert retrieval, training, evaluation, index and ZeroMQ server."""

__version__ = "0.1.0"
