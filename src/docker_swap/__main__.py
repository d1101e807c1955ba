from docker_swap._entry import main

main()
