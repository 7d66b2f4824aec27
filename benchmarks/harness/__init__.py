"""Settings, servers and data -> measured, interleaved runs -> tables of medians."""
