<?php
/* The test users: username:password => attributes. */
$config = [
    'admin' => ['core:AdminPassword'],
    'example-userpass' => [
        'exampleauth:UserPass',
        'alice:alicepass' => [
            'uid' => ['alice'],
            'cn' => ['Alice Anderson'],
            'givenName' => ['Alice'],
            'sn' => ['Anderson'],
            'mail' => ['alice@example.test'],
            'eduPersonAffiliation' => ['member', 'employee'],
            'groups' => ['admins', 'developers'],
        ],
        'Bob.Smith:bobpass' => [
            'uid' => ['Bob.Smith'],
            'cn' => ['Bob Smith'],
            'givenName' => ['Bob'],
            'sn' => ['Smith'],
            'mail' => ['Bob.Smith@example.test'],
            'groups' => ['developers', 'operators'],
        ],
        'juergen:jürgenpass' => [
            'uid' => ['juergen'],
            'cn' => ['Jürgen Müller'],
            'givenName' => ['Jürgen'],
            'sn' => ['Müller'],
            'mail' => ['juergen@example.test'],
            'groups' => ['all-staff'],
        ],
    ],
];
