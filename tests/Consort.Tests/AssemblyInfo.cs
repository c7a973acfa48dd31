namespace Consort.Tests;
