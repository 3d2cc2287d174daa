"""The servers this project starts for itself: the embedded PostgreSQL and Redis of the quick
start (embedded.py), private redis-server processes (redis_server.py), and the pids that say
who still uses them (pids.py)."""
