from multiview.entry import main

main()
