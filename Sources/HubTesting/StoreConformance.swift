import Hub
