"""What everything stands on: settings, connections, schema, rules, keys, SQL, metrics, logs."""
