from cesres_ctl.cli import main

main()
