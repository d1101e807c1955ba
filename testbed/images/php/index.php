<?php
// The PHP-FPM test app: prints its VERSION; ?seconds=S answers after S seconds.
if (isset($_GET['seconds'])) {
    usleep((int) ((float) $_GET['seconds'] * 1000000));
}
echo (getenv('VERSION') ?: 'v1'), "\n";
