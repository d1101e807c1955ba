"""targets.swarm"""
