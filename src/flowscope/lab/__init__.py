"""Traffic lab: real tools in Linux network namespaces make labelled traffic.

The lab builds a private switched network (one namespace per host plus one holding the
bridge), starts real servers, benign clients and attack tools in it, records every
frame on the bridge and writes exact ground truth (`labels.csv`) beside the capture.
Nothing lives in the host's own network namespace, so lab traffic cannot leave it.
"""
