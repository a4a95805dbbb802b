"""Repository tools that are not part of the `lit_gpt` library: benchmarks, the MEAP-vs-NTP
harness and the sample-corpus generator. Their commands are in scripts/ and data_process/."""
