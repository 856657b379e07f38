from diffsim.cli import main

raise SystemExit(main())
