"""labelstudio"""
