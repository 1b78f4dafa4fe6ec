"""`ganforge playground`: a local page to build, train and explore GANs live (images or 2-D points).

``create_app`` (app.py) is the FastAPI server; setup.py checks the page's setup JSON, sessions.py runs each
session's trainer on its own thread, toy2d.py is the 2-D mode, security.py the token and the limits.
"""
