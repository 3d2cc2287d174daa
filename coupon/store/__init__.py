"""The Redis store that the strategies and the queue share: every key (keys.py), a coupon's
state and the script loader (state.py), the streams of accepted requests (stream.py), and
every Lua script, each readable whole with a KEYS/ARGV header (lua/)."""
