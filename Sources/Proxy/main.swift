print("vtp-proxy: not yet")
