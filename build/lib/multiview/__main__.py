from multiview.cli import main

main()
