from dpg_mcp.sandbox.cli import main

raise SystemExit(main())
