"""targets.compose"""
