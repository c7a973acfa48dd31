namespace Consort.Server.Tests;
