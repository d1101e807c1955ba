<?php
// Version 2 of the app. The walkthrough copies it into app/src/ before building.
header('Content-Type: text/plain');
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    echo "v2 got ", strlen(file_get_contents('php://input')), " bytes\n";
} else {
    echo "v2\n";
}
