"""Driving a real server under load: gunicorn and nginx as children, locust, the open loop, the crowd."""
