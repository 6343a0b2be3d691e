"""Sources: which files to follow (discover), how to follow one (tail), where we were (checkpoint),
when to look again (wake), and all of them from one thread (pool)."""
from .checkpoint import Checkpoints, Position
from .discover import Discovery
from .pool import Tailer, raise_fd_limit
from .tail import Chunk, Follower
from .wake import Waker

__all__ = ["Checkpoints", "Chunk", "Discovery", "Follower", "Position", "Tailer", "Waker", "raise_fd_limit"]
