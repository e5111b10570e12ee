from kvtest.cli import main

raise SystemExit(main())
